//! What an operator does to jobs in an incident: delete one, run one now, drain the waiting
//! ones, obliterate the queue (`lua/delete.lua`, `retry.lua`, `drain.lua`, `obliterate.lua`).
use fred::types::Value;

use super::Queue;
use crate::{
    request::RequestId,
    scripts::{status, Command, Reply},
    Error, JobState, Result,
};

/// How many jobs one drain or obliterate call removes; the client repeats the call until done,
/// so that no single call blocks Redis for long (about a millisecond per thousand jobs).
const REMOVE_BATCH: i64 = 1_000;

impl Queue {
    /// Deletes one job that is waiting (pending, scheduled, retrying) or finished (dead,
    /// completed), with everything kept about it, and returns the state it was in. A running
    /// job is refused ([`Error::JobActive`]); an unknown id is [`Error::JobNotFound`].
    pub async fn delete_job(&self, id: &str) -> Result<JobState> {
        self.existing().await?;
        let (status, r) = self
            .call(Command::Delete, Some(&RequestId::new()), vec![id.into()])
            .await?;
        let queue = self.name();
        match moved(Command::Delete, queue, id, status, r)? {
            (JobState::Active, false) => Err(Error::JobActive {
                queue: queue.to_owned(),
                id: id.to_owned(),
            }),
            (state, _) => Ok(state),
        }
    }

    /// Runs a scheduled or retrying job now: it becomes pending (its attempts as they were) and
    /// idle workers are woken. Returns the state it was in. A job in another state is refused
    /// ([`Error::NotRetryable`]; a dead one goes back with [`dead_replay`](Self::dead_replay)).
    pub async fn retry_job(&self, id: &str) -> Result<JobState> {
        self.existing().await?;
        let (status, r) = self
            .call(Command::Retry, Some(&RequestId::new()), vec![id.into()])
            .await?;
        let queue = self.name();
        match moved(Command::Retry, queue, id, status, r)? {
            (state, true) => Ok(state),
            (state, false) => Err(Error::NotRetryable {
                queue: queue.to_owned(),
                id: id.to_owned(),
                state,
            }),
        }
    }

    /// Removes every waiting job (pending, scheduled, retrying) of this queue, a bounded batch
    /// per call, and returns how many. Running and finished jobs stay; jobs enqueued meanwhile
    /// may be removed too.
    pub async fn drain(&self) -> Result<u64> {
        self.existing().await?;
        let mut removed = 0;
        loop {
            let args = vec![Value::from(REMOVE_BATCH)];
            let (_, mut r) = self.call(Command::Drain, Some(&RequestId::new()), args).await?;
            let batch = r.int()?;
            removed += batch.max(0) as u64;
            if batch < REMOVE_BATCH {
                return Ok(removed);
            }
        }
    }

    /// Removes this queue and everything in it: jobs in every state, its counters, its pause flag,
    /// its keys, and its name from the index of queues. Returns how many jobs it removed.
    ///
    /// Jobs running meanwhile lose their lease: their worker's next renewal or settle call is
    /// refused as [`Error::LeaseLost`] (the worker cancels them) and writes nothing. Jobs
    /// enqueued while it runs may be removed too, or start the queue afresh.
    pub async fn obliterate(&self) -> Result<u64> {
        self.existing().await?;
        let mut removed = 0;
        loop {
            // No request id: a re-sent call removes what is left, as the first one did, and
            // remembering the answer would write a key of the queue.
            let args = vec![Value::from(REMOVE_BATCH)];
            let (_, mut r) = self.call(Command::Obliterate, None, args).await?;
            removed += r.int()?.max(0) as u64;
            if r.int()? == 1 {
                break;
            }
        }
        self.client.unindex(self.name()).await?;
        Ok(removed)
    }
}

/// Reads a `{OK, state, moved (0/1)} | {NOT_FOUND}` reply.
fn moved(command: Command, queue: &str, id: &str, status: i64, mut r: Reply) -> Result<(JobState, bool)> {
    if status == status::NOT_FOUND {
        return Err(Error::JobNotFound {
            queue: queue.to_owned(),
            id: id.to_owned(),
        });
    }
    let state = r.string()?;
    let state = JobState::parse(&state).ok_or_else(|| Error::UnexpectedReply {
        script: command.name().into(),
        detail: format!("unknown job state {state:?}"),
    })?;
    Ok((state, r.int()? == 1))
}
