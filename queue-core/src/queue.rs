//! A queue's handle: what one queue can do. Enqueueing is here; the operator's calls are in
//! `queue/admin.rs` (listing jobs in `queue/jobs.rs`, acting on them in `queue/operations.rs`),
//! the lease calls workers are built on in `queue/lease.rs`.
use std::sync::Arc;

use fred::types::Value;

use crate::{
    keys::QueueKeys,
    new_job::NewJob,
    request::RequestId,
    scripts::{Command, Reply},
    Enqueued, Error, QueueClient, Result,
};

mod admin;
mod cancel;
mod cron;
mod events;
mod groups;
mod jobs;
mod lease;
mod limits;
mod operations;
mod wait;

pub use admin::Pause;
pub use cancel::Cancellation;
pub use cron::FiredSchedules;
pub use events::Event;
pub use groups::{GroupLoad, GroupsReport};
pub use jobs::{JobPage, JobSummary, MAX_JOBS_PAGE};
pub use lease::{Lease, Sweep};

/// The most jobs one [`Queue::enqueue_bulk`] takes: a bulk is one atomic script call, and this
/// bounds how long it blocks Redis. Split larger bulks (each part is all-or-none).
pub const MAX_BULK_JOBS: usize = 10_000;

/// The most encoded bytes (payloads and envelopes) one bulk takes, for the same reason.
pub const MAX_BULK_BYTES: usize = 32 << 20;

/// One queue, named once: its name is checked and its keys are made when the handle is
/// ([`QueueClient::queue`]), and every call on the queue goes through it. Cheap to clone.
///
/// ```no_run
/// use queue_core::{NewJob, QueueClient};
/// # async fn demo() -> queue_core::Result<()> {
/// let client = QueueClient::connect("redis://127.0.0.1:6379").await?;
/// let emails = client.queue("emails")?;
/// emails.enqueue(NewJob::new("send", &serde_json::json!({"to": "a@b.c"}))).await?;
/// println!("{} pending", emails.stats().await?.pending);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Queue {
    client: QueueClient,
    keys: Arc<QueueKeys>,
}

/// Shows the queue's name (its client shows its prefix).
impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name())
            .field("prefix", &self.client.config().prefix)
            .finish()
    }
}

/// How many times enqueue draws a new id for a job whose generated id was taken (each time with
/// odds below 2^-40 on any realistic queue) before it reports an error.
const GENERATED_ID_ATTEMPTS: usize = 5;

impl Queue {
    pub(crate) fn new(client: QueueClient, keys: QueueKeys) -> Self {
        Queue {
            client,
            keys: Arc::new(keys),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.keys.queue()
    }

    /// The queue's keys, in the order its scripts take them.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// The client this handle calls through.
    pub fn client(&self) -> &QueueClient {
        &self.client
    }

    /// Runs one of the queue's scripts on this queue's keys.
    async fn call(&self, command: Command, request: Option<&RequestId>, args: Vec<Value>) -> Result<(i64, Reply)> {
        self.client.call(command, &self.keys, request, args).await
    }

    /// Enqueues one job: a [`NewJob`], or a [`JobPayload`](crate::JobPayload) value.
    pub async fn enqueue(&self, job: impl Into<NewJob>) -> Result<Enqueued> {
        let mut outcome = self.enqueue_bulk([job.into()]).await?;
        Ok(outcome.remove(0))
    }

    /// Enqueues jobs in one atomic call: all are written or, if any is invalid, none. A bulk
    /// takes at most [`MAX_BULK_JOBS`] jobs and [`MAX_BULK_BYTES`] bytes: split larger ones.
    pub async fn enqueue_bulk(&self, jobs: impl IntoIterator<Item = impl Into<NewJob>>) -> Result<Vec<Enqueued>> {
        let max_payload_bytes = self.client.config().max_payload_bytes;
        let mut ids = Vec::new();
        let mut bytes = 0;
        let mut args = vec![Value::Null];
        // Consecutive jobs with the same properties and run time form one run (see push.lua).
        let mut run: Option<(usize, Vec<u8>, Vec<u8>)> = None;
        let mut run_len = 0;
        // For each job with a generated id, where its run's header and its envelope are in
        // `args`, to send it again under a new id if its id was taken.
        let mut generated = Vec::new();
        for job in jobs {
            let fields = job.into().into_push_fields(max_payload_bytes)?;
            bytes += fields.envelope.len() + fields.id.len();
            if ids.len() == MAX_BULK_JOBS || bytes > MAX_BULK_BYTES {
                return Err(Error::BulkTooLarge {
                    jobs_limit: MAX_BULK_JOBS,
                    bytes_limit: MAX_BULK_BYTES,
                });
            }
            // A job with a unique key is a run of its own (the script takes its key from the run).
            let same_run = !fields.unique
                && run
                    .as_ref()
                    .is_some_and(|(_, props, when)| *props == fields.props && *when == fields.when);
            if !same_run {
                if let Some((at, _, _)) = run.take() {
                    args[at] = Value::from(run_len);
                }
                run_len = 0;
                run = Some((args.len(), fields.props.clone(), fields.when.clone()));
                args.push(Value::Null);
                args.push(Value::Bytes(fields.props.into()));
                args.push(Value::Bytes(fields.when.into()));
            }
            run_len += 1;
            if fields.generated {
                generated.push(Some((run.as_ref().map_or(0, |(at, _, _)| *at), args.len() + 1)));
            } else {
                generated.push(None);
            }
            args.push(Value::from(fields.id.as_str()));
            args.push(Value::Bytes(fields.envelope.into()));
            ids.push(fields.id);
        }
        let Some((at, _, _)) = run else {
            return Ok(Vec::new());
        };
        args[at] = Value::from(run_len);
        args[0] = Value::from(ids.len() as i64);
        self.client.index(self.name()).await?;
        let (_, mut reply) = self.call(Command::Push, Some(&RequestId::new()), args.clone()).await?;
        let mut outcomes = ids
            .into_iter()
            .map(|id| {
                Ok(match reply.int_or_string()? {
                    Ok(created) => Enqueued {
                        id,
                        created: created == 1,
                        duplicate: false,
                    },
                    Err(holder) => Enqueued {
                        id: holder,
                        created: false,
                        duplicate: true,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        // A generated id that was taken is a collision (see `generated_id`), not the caller's
        // "already enqueued": such jobs go again, each a run of its own, under new ids.
        for _ in 0..GENERATED_ID_ATTEMPTS {
            let taken: Vec<(usize, usize, usize)> = outcomes
                .iter()
                .zip(&generated)
                .enumerate()
                .filter_map(|(i, (outcome, at))| {
                    let (run, envelope) = (*at)?;
                    (!outcome.created && !outcome.duplicate).then_some((i, run, envelope))
                })
                .collect();
            if taken.is_empty() {
                return Ok(outcomes);
            }
            let mut again = vec![Value::from(taken.len() as i64)];
            for &(i, run, envelope) in &taken {
                outcomes[i].id = crate::new_job::generated_id();
                again.extend([
                    Value::from(1),
                    args[run + 1].clone(),
                    args[run + 2].clone(),
                    Value::from(outcomes[i].id.as_str()),
                    args[envelope].clone(),
                ]);
            }
            let (_, mut reply) = self.call(Command::Push, Some(&RequestId::new()), again).await?;
            for &(i, _, _) in &taken {
                match reply.int_or_string()? {
                    Ok(created) => outcomes[i].created = created == 1,
                    Err(holder) => {
                        outcomes[i] = Enqueued {
                            id: holder,
                            created: false,
                            duplicate: true,
                        }
                    }
                }
            }
        }
        Err(Error::UnexpectedReply {
            script: Command::Push.name().into(),
            detail: format!("{GENERATED_ID_ATTEMPTS} generated ids in a row were taken"),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{new_job::tests::NEXT_GENERATED_IDS, Error, NewJob, QueueClient};

    fn next_generated_ids(ids: &[&str]) {
        NEXT_GENERATED_IDS.with(|next| *next.borrow_mut() = ids.iter().rev().map(|id| id.to_string()).collect());
    }

    // A current-thread runtime: the ids above are the test thread's.
    #[tokio::test(flavor = "current_thread")]
    async fn a_generated_id_that_is_taken_goes_again_under_a_new_one_and_drops_no_job() {
        let redis = throwaway_redis::RedisServer::start().unwrap();
        let client = QueueClient::connect(&redis.url()).await.unwrap();
        let q = client.queue("q").unwrap();
        q.enqueue(NewJob::new("k", &"first").id("taken")).await.unwrap();

        next_generated_ids(&["taken", "taken", "fresh"]);
        let jobs = [NewJob::new("k", &"second"), NewJob::new("k", &"third").id("own")];
        let enqueued = q.enqueue_bulk(jobs).await.unwrap();
        assert_eq!(
            enqueued
                .iter()
                .map(|e| (e.id.as_str(), e.created, e.duplicate))
                .collect::<Vec<_>>(),
            [("fresh", true, false), ("own", true, false)]
        );
        let payload = |id: &'static str| {
            let q = q.clone();
            async move { q.job(id).await.unwrap().envelope.decode::<String>().unwrap() }
        };
        assert_eq!(payload("taken").await, "first", "the job holding the id is untouched");
        assert_eq!(payload("fresh").await, "second");
        assert_eq!(q.stats().await.unwrap().pending, 3);

        // An explicit id that exists is the caller's "already enqueued", not a collision.
        let again = q.enqueue(NewJob::new("k", &"fourth").id("taken")).await.unwrap();
        assert_eq!((again.id.as_str(), again.created), ("taken", false));

        // Taken every time: an error, and nothing written.
        next_generated_ids(&["taken"; 6]);
        let error = q.enqueue(NewJob::new("k", &"fifth")).await.unwrap_err();
        assert!(matches!(error, Error::UnexpectedReply { .. }), "{error:?}");
        assert_eq!(q.stats().await.unwrap().pending, 3);
        assert_eq!(payload("taken").await, "first");
    }
}
