//! The calls an operator makes on a queue: look a job up, pause and resume, stats, the dead letter.
use fred::{interfaces::HashesInterface, types::Value};

use super::Queue;
use crate::{
    envelope::{Job, JobRecord, JobState},
    keys::META,
    request::RequestId,
    scripts::{status, Command},
    DeadJob, DeadPage, Error, QueueStats, Result,
};

/// How many dead jobs one replay or purge call moves; the client repeats until done, so no
/// single script call blocks Redis for long.
const DEAD_BATCH: u64 = 1_000;

/// A stored JSON value (a result, a progress report), or `None` when there is none; bytes
/// that are not JSON (written by hand) are shown as a string rather than hidden.
pub(super) fn json_value(bytes: &[u8]) -> Option<serde_json::Value> {
    if bytes.is_empty() {
        return None;
    }
    Some(serde_json::from_slice(bytes).unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned().into()))
}

/// What [`Queue::pause`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// The queue was running and is now paused.
    Paused,
    /// The queue was paused already: nothing changed.
    AlreadyPaused,
    /// The queue had no keys yet (it never had a job, or was obliterated): it is paused ahead
    /// of its first job.
    Ahead,
}

impl Queue {
    /// A job's state and record.
    pub async fn job(&self, id: &str) -> Result<Job> {
        self.existing().await?;
        let (status, mut reply) = self.call(Command::Job, None, vec![id.into()]).await?;
        if status == status::NOT_FOUND {
            return Err(Error::JobNotFound {
                queue: self.name().to_owned(),
                id: id.to_owned(),
            });
        }
        let state = reply.string()?;
        let record = JobRecord::new(reply.bytes()?);
        let envelope = record.envelope(id, self.name())?;
        let attempts = reply.int()? as u32;
        let last_error = Some(reply.string()?).filter(|e| !e.is_empty());
        let run_at = reply.string()?;
        let since = reply.string()?;
        let result = reply.bytes()?;
        let progress = reply.bytes()?;
        let group = Some(reply.string()?).filter(|g| !g.is_empty());
        Ok(Job {
            envelope,
            state: JobState::parse(&state).ok_or_else(|| Error::UnexpectedReply {
                script: Command::Job.name().into(),
                detail: format!("unknown job state {state:?}"),
            })?,
            attempts,
            created_at_ms: record.created_ms().unwrap_or(0),
            run_at_ms: run_at.parse().ok(),
            state_since_ms: since.parse().ok(),
            last_error,
            result: json_value(&result),
            progress: json_value(&progress),
            group,
        })
    }

    /// Checks that the queue exists (has received a job, or was paused ahead of its jobs), so
    /// that an operator's call on a misspelt name says so instead of answering for an empty
    /// queue.
    pub(super) async fn existing(&self) -> Result<()> {
        if self.client.is_known(self.name()).await? {
            return Ok(());
        }
        // A queue enqueued into again after it was obliterated, by a client that had indexed it
        // before (and so does not index it again), has counters but no entry: it is indexed
        // again here.
        let meta: i64 = self.client.redis().hlen(&self.keys().all()[META]).await?;
        if meta == 0 {
            return Err(Error::UnknownQueue(self.name().to_owned()));
        }
        self.client.index(self.name()).await
    }

    /// Stops workers from leasing jobs of this queue. A queue that has no jobs yet can be
    /// paused ahead of them ([`Pause::Ahead`]): it is added to the index of queues, so `stats`
    /// lists it (empty, paused).
    pub async fn pause(&self) -> Result<Pause> {
        self.client.index(self.name()).await?;
        let (_, mut reply) = self.call(Command::Pause, Some(&RequestId::new()), vec![]).await?;
        Ok(match reply.string()?.as_str() {
            "ahead" => Pause::Ahead,
            "already" => Pause::AlreadyPaused,
            _ => Pause::Paused,
        })
    }

    /// Lets workers lease jobs of this queue again, and wakes them. Returns whether it was
    /// paused (resuming a queue that was not changes nothing). A queue that never existed is
    /// [`Error::UnknownQueue`].
    pub async fn resume(&self) -> Result<bool> {
        self.existing().await?;
        let (_, mut reply) = self.call(Command::Resume, Some(&RequestId::new()), vec![]).await?;
        Ok(reply.int()? == 1)
    }

    /// Counts for one queue.
    pub async fn stats(&self) -> Result<QueueStats> {
        self.existing().await?;
        let (_, mut r) = self.call(Command::Stats, None, vec![]).await?;
        let mut counts = [0u64; 12];
        for count in &mut counts {
            *count = r.int()?.max(0) as u64;
        }
        let [pending, scheduled, retrying, active, dead, completed, enqueued_total, completed_total, failed_attempts_total, dead_total, paused, latency_ms] =
            counts;
        let (rate, concurrency) = (r.string()?, r.string()?);
        let cancelled_total = r.int()?.max(0) as u64;
        let events_max_len = r.int()?.max(0) as u64;
        let (group_rate, group_concurrency) = (r.string()?, r.string()?);
        let limits = crate::Limits::parse([&rate, &concurrency, &group_rate, &group_concurrency])?;
        Ok(QueueStats {
            name: self.name().to_owned(),
            pending,
            scheduled,
            retrying,
            active,
            dead,
            completed,
            enqueued_total,
            completed_total,
            failed_attempts_total,
            dead_total,
            paused: paused == 1,
            latency_ms,
            limits,
            cancelled_total,
            events_max_len,
        })
    }

    /// A page of the dead letter, most recent first.
    pub async fn dead_list(&self, offset: u64, limit: u64) -> Result<DeadPage> {
        self.existing().await?;
        let args = vec![Value::from(offset as i64), Value::from(limit.max(1) as i64)];
        let (_, mut r) = self.call(Command::DeadList, None, args).await?;
        let total = r.int()? as u64;
        let mut jobs = Vec::new();
        while r.has_more() {
            let id = r.string()?;
            let failed_at_ms = r.int()?;
            let envelope = JobRecord::new(r.bytes()?).envelope(&id, self.name()).ok();
            let attempts = r.int()? as u32;
            let error = r.string()?;
            jobs.push(DeadJob {
                id,
                failed_at_ms,
                attempts,
                error,
                envelope,
            });
        }
        Ok(DeadPage { total, jobs })
    }

    /// Moves the named dead jobs back to pending with fresh attempts. Returns how many moved;
    /// ids not in the dead letter are an error ([`Error::NotInDeadLetter`]) naming the first of
    /// them, after the others moved.
    pub async fn dead_replay(&self, ids: &[&str]) -> Result<u64> {
        self.existing().await?;
        let mut args = vec![Value::from("ids")];
        args.extend(ids.iter().map(|id| Value::from(*id)));
        let (_, mut r) = self.call(Command::DeadReplay, Some(&RequestId::new()), args).await?;
        let replayed = r.int()? as u64;
        if r.has_more() {
            return Err(Error::NotInDeadLetter {
                queue: self.name().to_owned(),
                id: r.string()?,
            });
        }
        Ok(replayed)
    }

    /// Moves every dead job back to pending, oldest first; returns how many moved.
    pub async fn dead_replay_all(&self) -> Result<u64> {
        self.existing().await?;
        self.drain_dead(Command::DeadReplay, || {
            vec!["oldest".into(), (DEAD_BATCH as i64).into()]
        })
        .await
    }

    /// Forgets every dead job; returns how many.
    pub async fn dead_purge(&self) -> Result<u64> {
        self.existing().await?;
        self.drain_dead(Command::DeadPurge, || vec![(DEAD_BATCH as i64).into()])
            .await
    }

    async fn drain_dead(&self, command: Command, args: impl Fn() -> Vec<Value>) -> Result<u64> {
        let mut total = 0;
        loop {
            let (_, mut r) = self.call(command, Some(&RequestId::new()), args()).await?;
            let moved = r.int()? as u64;
            total += moved;
            if moved < DEAD_BATCH {
                return Ok(total);
            }
        }
    }
}
